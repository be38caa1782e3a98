//! Readiness that tells the truth: `/readyz` names each dependency that does not serve (an
//! identity provider, a JWKS) and turns 200 once it is back; a health-only listener for probes
//! from outside; `authgate health` for container health checks.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{free_port, get, Gateway, Origin};
use crate::idp::TestIdp;

fn failing(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            (
                format!(
                    "{} {}",
                    c["kind"].as_str().unwrap(),
                    c["name"].as_str().unwrap()
                ),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Polls readiness until it answers `status`, for at most `within`.
async fn until_status(gw: &Gateway, status: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (now, report) = gw.readiness().await;
        if now == status {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "readiness stayed {now}, not {status}: {report:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A gateway whose one app signs in with a provider that answers 503 to everything.
async fn behind_a_provider_that_is_down() -> (Origin, TestIdp, Gateway) {
    let origin = Origin::start().await;
    let idp = TestIdp::start().await;
    idp.set(|k| k.unavailable = true);
    let gw = Gateway::start(&format!(
        "oidc_providers:\n{}apps:\n  - {{id: app, host: app.test, oidc_provider: test-idp, origin: {{url: '{}'}}}}\n",
        idp.provider_yaml(""),
        origin.url()
    ))
    .await;
    (origin, idp, gw)
}

#[tokio::test]
async fn a_provider_that_is_down_makes_the_gateway_unready_until_it_is_back() {
    let (_origin, idp, gw) = behind_a_provider_that_is_down().await;
    let (status, report) = gw.readiness().await;
    assert_eq!(status, 503, "{report:#}");
    assert_eq!(report["status"], "not ready");
    let why = failing(&report);
    assert_eq!(why.len(), 1, "{why:?}");
    assert_eq!(why[0].0, "provider test-idp");
    assert!(why[0].1.contains("503"), "{why:?}");
    // The listener and the session store are fine, and say so.
    let listed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"listener") && listed.contains(&"session_store"));

    idp.set(|k| k.unavailable = false);
    let report = until_status(&gw, 200, Duration::from_secs(15)).await;
    assert_eq!(report["status"], "ready");
    assert!(failing(&report).is_empty());

    // Down again after it was discovered: noticed, and the reason named.
    idp.set(|k| k.unavailable = true);
    let report = until_status(&gw, 503, Duration::from_secs(15)).await;
    assert_eq!(failing(&report)[0].0, "provider test-idp");
    idp.set(|k| k.unavailable = false);
    until_status(&gw, 200, Duration::from_secs(15)).await;
}

#[tokio::test]
async fn a_jwks_that_never_answered_is_named() {
    let origin = Origin::start().await;
    let closed = free_port();
    let gw = Gateway::start(&format!(
        "jwt_issuers:\n  - {{id: partner, issuer: 'https://id.partner.test', jwks_uri: 'http://127.0.0.1:{closed}/jwks', audiences: [api]}}\napps:\n  - {{id: api, host: api.test, default_action: jwt, origin: {{url: '{}'}}}}\n",
        origin.url()
    ))
    .await;
    let report = until_status(&gw, 503, Duration::from_secs(5)).await;
    let why = failing(&report);
    assert_eq!(why.len(), 1, "{why:?}");
    assert_eq!(why[0].0, "jwks partner");
    assert!(why[0].1.starts_with("no usable key"), "{why:?}");
}

#[tokio::test]
async fn the_health_listener_answers_probes_and_nothing_else() {
    let origin = Origin::start().await;
    let health = free_port();
    let port = free_port();
    let gw = Gateway::start_full(
        &format!("listen: [{{address: '127.0.0.1:{port}'}}]"),
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        &format!(", health_listen: '0.0.0.0:{health}', api_token: 'an-admin-token-of-at-least-32-bytes!'"),
        &format!(
            "apps: [{{id: a, host: a.test, default_action: public, origin: {{url: '{}'}}}}]\n",
            origin.url()
        ),
    )
    .await;
    let at = std::net::SocketAddr::from(([127, 0, 0, 1], health));
    assert_eq!(get(at, "/healthz", "h").await.unwrap().status, 200);
    let ready = get(at, "/readyz", "h").await.unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.header("content-type"), Some("application/json"));
    for hidden in ["/metrics", "/api/apps", "/"] {
        assert_eq!(get(at, hidden, "h").await.unwrap().status, 404, "{hidden}");
    }
    // The admin listener still has everything.
    assert_eq!(get(gw.admin, "/metrics", "h").await.unwrap().status, 200);

    // `authgate health` finds the health listener in the configuration and asks it.
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_authgate"))
            .arg("health")
            .arg("-c")
            .arg(&gw.config_path)
            .args(extra)
            .output()
            .unwrap()
    };
    let ready = run(&[]);
    let said = String::from_utf8_lossy(&ready.stdout);
    assert!(ready.status.success(), "{said}");
    assert!(
        said.contains(&format!("127.0.0.1:{health}/readyz: 200 ready")),
        "{said}"
    );
    assert!(run(&["--live"]).status.success());
}

#[tokio::test]
async fn authgate_health_fails_and_says_why() {
    let (_origin, _idp, gw) = behind_a_provider_that_is_down().await;
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["health", "-c"])
        .arg(&gw.config_path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("503 not ready; provider test-idp:"), "{said}");
    // Alive all the same.
    let live = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["health", "--live", "-c"])
        .arg(&gw.config_path)
        .output()
        .unwrap();
    assert!(live.status.success());
    drop(gw);
    // Nobody there: a clear line, not a hang.
    let gone = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["health", "--timeout", "2", "-c"])
        .arg(std::env::temp_dir().join("authgate-no-such-config.yaml"))
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("cannot read"));
}
