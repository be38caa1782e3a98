//! Two real gateways sharing one real Redis for their sessions: a sign-in through one is a
//! sign-in on both, a sign-out on one ends the session on both within a second, and Redis
//! that stops answering gives 503s (never a sign-in loop) while sessions held near keep
//! serving, and everything resumes when it answers again.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::browser::Browser;
use crate::common::{Gateway, Origin};
use crate::idp::TestIdp;
use crate::store_redis::start;

struct Replicas {
    _origin: Origin,
    idp: TestIdp,
    redis: crate::store_redis::Server,
    _dir: tempfile::TempDir,
    a: Gateway,
    b: Gateway,
}

async fn replicas() -> Replicas {
    replicas_with("", |_| {}).await
}

/// Two replicas, with more `sessions` keys and the provider's knobs set first.
async fn replicas_with(
    sessions_extra: &str,
    knobs: impl FnOnce(&mut crate::idp::Knobs),
) -> Replicas {
    let dir = tempfile::tempdir().unwrap();
    let redis = start(dir.path(), &[]);
    let origin = Origin::start().await;
    let idp = TestIdp::start().await;
    idp.set(knobs);
    let config = format!(
        "oidc_providers:\n{}sessions:\n  cookie_keys: ['a-cookie-key-shared-by-the-replicas-0123456789']\n  {sessions_extra}\n  store: redis\n  redis: {{url: 'redis://127.0.0.1:{}/', key_prefix: 'replicas-test:', pool_size: 2}}\napps:\n  - {{id: app, host: app.test, origin: {{url: '{}'}}}}\n",
        idp.provider_yaml(""),
        redis.port,
        origin.url()
    );
    let a = Gateway::start(&config).await;
    let b = Gateway::start(&config).await;
    Replicas {
        _origin: origin,
        idp,
        redis,
        _dir: dir,
        a,
        b,
    }
}

/// A browser signed in through replica A.
async fn signed_in_on_a(r: &Replicas) -> Browser {
    let mut on_a = Browser::new("app.test", r.a.addr);
    let hops = on_a.follow(&url(&r.a, "/private")).await;
    assert_eq!(hops.last().unwrap().status, 200, "signed in through A");
    on_a
}

pub(crate) fn url(gw: &Gateway, path: &str) -> String {
    format!("http://app.test:{}{path}", gw.addr.port())
}

/// `count` requests at once with `jar`'s session, alternately on A and B; their statuses.
async fn spread(r: &Replicas, jar: &Browser, count: usize) -> Vec<u16> {
    let requests = (0..count).map(|i| {
        let gw = if i % 2 == 0 { &r.a } else { &r.b };
        let mut browser = browser_on(gw, jar);
        let target = url(gw, &format!("/private/{i}"));
        async move { browser.get(&target).await.status }
    });
    futures_util::future::join_all(requests).await
}

/// A browser on replica `gw` holding `jar`'s cookies.
pub(crate) fn browser_on(gw: &Gateway, jar: &Browser) -> Browser {
    let mut b = Browser::new("app.test", gw.addr);
    b.jar = jar.jar.clone();
    b
}

#[tokio::test]
async fn a_sign_in_on_one_replica_holds_on_the_other_and_a_sign_out_ends_it_on_both() {
    let r = replicas().await;
    let mut on_a = Browser::new("app.test", r.a.addr);
    let hops = on_a.follow(&url(&r.a, "/private")).await;
    assert_eq!(hops.last().unwrap().status, 200, "signed in through A");
    let mut on_b = browser_on(&r.b, &on_a);
    let page = on_b.get(&url(&r.b, "/private")).await;
    assert_eq!(page.status, 200, "the same cookie is signed in on B");
    // Nothing readable about the user in Redis: every value, dumped.
    let keys = crate::store_redis::redis_cli(r.redis.port, &["KEYS", "replicas-test:*"]);
    assert!(
        keys.contains("session:") && keys.contains("user:"),
        "{keys}"
    );
    // Key names included: they must not name the user either.
    let mut dump = keys.clone();
    for key in keys.lines() {
        dump.push_str(&crate::store_redis::redis_cli(
            r.redis.port,
            &["--no-raw", "DUMP", key],
        ));
    }
    for secret in ["user@example.com", "user-1", "refresh", "staff"] {
        assert!(!dump.contains(secret), "{secret} readable in Redis");
    }
    // A holds the session near; B ends it.
    assert_eq!(on_a.get(&url(&r.a, "/private")).await.status, 200);
    let out = on_b
        .request(
            "GET",
            &url(&r.b, "/_auth/logout"),
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(out.status, 302);
    let ended = Instant::now();
    let mut on_a_again = browser_on(&r.a, &on_a);
    loop {
        let status = on_a_again.get(&url(&r.a, "/private")).await.status;
        if status == 302 {
            eprintln!(
                "the sign-out on B was honoured on A after {:?}",
                ended.elapsed()
            );
            break;
        }
        assert_eq!(status, 200);
        assert!(
            ended.elapsed() < Duration::from_secs(1),
            "A still honoured the session after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The store's round trips are measured.
    let metrics = r.a.metrics().await;
    assert!(
        metrics.contains("authgate_store_duration_seconds_count{op=\"get\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn redis_away_means_503_not_a_sign_in_loop_and_service_resumes() {
    let r = replicas().await;
    let mut on_a = signed_in_on_a(&r).await;
    // Redis stops answering (paused, its data kept).
    let pid = r.redis.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    // A holds the session near: it keeps serving.
    assert_eq!(on_a.get(&url(&r.a, "/private")).await.status, 200);
    // B has never seen it: it cannot know, and says so.
    let mut on_b = browser_on(&r.b, &on_a);
    let cold = on_b.get(&url(&r.b, "/private")).await;
    assert_eq!(cold.status, 503, "{}", cold.body);
    let api = on_b
        .request(
            "GET",
            &url(&r.b, "/private"),
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(api.status, 503);
    assert!(
        api.body.contains("session_store_unavailable"),
        "{}",
        api.body
    );
    let metrics = r.b.metrics().await;
    assert!(
        metrics.contains("authgate_store_errors_total{op=\"getex\"}"),
        "{metrics}"
    );
    let (status, report) = r.b.readiness().await;
    assert_eq!(status, 503, "{report:#}");
    assert!(report.to_string().contains("session_store"), "{report:#}");
    // Redis answers again: B serves the session, without a restart.
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    let back = Instant::now();
    loop {
        let status = on_b.get(&url(&r.b, "/private")).await.status;
        if status == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "B did not recover: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn sessions_outlive_every_replica() {
    let r = replicas().await;
    let on_a = signed_in_on_a(&r).await;
    let Replicas {
        _origin,
        idp: _idp,
        redis,
        _dir,
        a,
        b,
        ..
    } = r;
    let config = std::fs::read_to_string(&a.config_path).unwrap();
    let apps_and_more = config.split_once("oidc_providers:").unwrap().1.to_string();
    // Every replica goes; a new one starts with the same configuration.
    drop(a);
    drop(b);
    let c = Gateway::start(&format!("oidc_providers:{apps_and_more}")).await;
    let mut on_c = browser_on(&c, &on_a);
    assert_eq!(
        on_c.get(&url(&c, "/private")).await.status,
        200,
        "the session survived"
    );
    drop(redis);
}

#[tokio::test]
async fn a_due_refresh_is_made_once_across_replicas() {
    let r = replicas_with("refresh_before_expiry: 0s", |k| {
        k.expires_in = Some(2);
        k.refreshed_expires_in = Some(3600);
    })
    .await;
    let on_a = signed_in_on_a(&r).await;
    // Both replicas hold the session near.
    let mut warm_b = browser_on(&r.b, &on_a);
    assert_eq!(warm_b.get(&url(&r.b, "/private")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    // The tokens are due: 20 requests at once, half on each replica.
    let statuses = spread(&r, &on_a, 20).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        r.idp.refresh_calls(),
        1,
        "one refresh for the 20 requests on two replicas"
    );
}

#[tokio::test]
async fn replicas_waiting_on_a_refresh_that_failed_are_not_kept_waiting() {
    // Tokens for 4 s, refreshed from 2 s on: a failed refresh keeps the session meanwhile.
    let r = replicas_with("refresh_before_expiry: 2s", |k| k.expires_in = Some(4)).await;
    let on_a = signed_in_on_a(&r).await;
    let mut warm_b = browser_on(&r.b, &on_a);
    assert_eq!(warm_b.get(&url(&r.b, "/private")).await.status, 200);
    // The provider is briefly away: the refresh fails without ending the session.
    r.idp
        .set(|k| k.refresh_answer = Some((503, "<html>maintenance</html>".into())));
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let started = Instant::now();
    let statuses = spread(&r, &on_a, 10).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // The waiting replica stops waiting when the winner gives up (the lease lives 15 s).
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "requests waited {:?} for a refresh that had failed",
        started.elapsed()
    );
    assert!(r.idp.refresh_calls() >= 1);
}

#[tokio::test]
async fn one_replica_killed_the_other_keeps_every_session() {
    let r = replicas().await;
    let mut browsers = Vec::new();
    for _ in 0..3 {
        browsers.push(signed_in_on_a(&r).await);
    }
    let Replicas { a, b, .. } = r;
    // SIGKILL: no drain, nothing written on the way out.
    drop(a);
    for jar in &browsers {
        let mut on_b = browser_on(&b, jar);
        assert_eq!(
            on_b.get(&url(&b, "/private")).await.status,
            200,
            "a session made on the killed replica serves on the other"
        );
    }
}
