//! Replicas sharing sessions through Redis Cluster and through Sentinel (with a failover in
//! the middle), each gateway a real process: a sign-in through one is a sign-in on the others,
//! a sign-out through one ends it on the others within a second.

use std::time::{Duration, Instant};

use crate::browser::Browser;
use crate::common::{Gateway, Origin};
use crate::idp::TestIdp;
use crate::replicas::{browser_on, url};
use crate::store_redis::{redis_cli, start_cluster, start_master_and_replica, start_sentinels};

fn config(idp: &TestIdp, origin: &Origin, redis: &str) -> String {
    format!(
        "oidc_providers:\n{}sessions:\n  cookie_keys: ['a-cookie-key-shared-by-the-replicas-0123456789']\n  store: redis\n  redis: {redis}\napps:\n  - {{id: app, host: app.test, origin: {{url: '{}'}}}}\n",
        idp.provider_yaml(""),
        origin.url()
    )
}

async fn sign_in(gw: &Gateway) -> Browser {
    let mut b = Browser::new("app.test", gw.addr);
    let hops = b.follow(&url(gw, "/private")).await;
    assert_eq!(hops.last().unwrap().status, 200, "signed in");
    b
}

/// Signs out through `from`, then waits (at most a second) for `on` to refuse the session.
async fn signed_out_everywhere(from: &Gateway, on: &Gateway, jar: &Browser) {
    let out = browser_on(from, jar)
        .request(
            "GET",
            &url(from, "/_auth/logout"),
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(out.status, 302);
    let ended = Instant::now();
    let mut there = browser_on(on, jar);
    loop {
        match there.get(&url(on, "/private")).await.status {
            302 => return,
            200 => {}
            other => panic!("{other} after the sign-out"),
        }
        assert!(
            ended.elapsed() < Duration::from_secs(1),
            "the session still serves a second after the sign-out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn replicas_share_sessions_on_a_three_master_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, addresses) = start_cluster(dir.path());
    let (origin, idp) = (Origin::start().await, TestIdp::start().await);
    let redis = format!(
        "{{url: 'redis://127.0.0.1/', mode: cluster, nodes: [{}]}}",
        addresses.join(", ")
    );
    let config = config(&idp, &origin, &redis);
    let (a, b) = (Gateway::start(&config).await, Gateway::start(&config).await);

    let mut browsers = Vec::new();
    for _ in 0..6 {
        browsers.push(sign_in(&a).await);
    }
    for jar in &browsers {
        assert_eq!(
            browser_on(&b, jar).get(&url(&b, "/private")).await.status,
            200
        );
    }
    // The sessions are spread over the masters, not kept on one.
    let holding = nodes
        .iter()
        .filter(|n| redis_cli(n.port, &["DBSIZE"]).parse::<u64>().unwrap_or(0) > 0)
        .count();
    assert!(holding >= 2, "sessions on {holding} master(s) only");
    signed_out_everywhere(&b, &a, &browsers[0]).await;
    assert_eq!(
        browser_on(&a, &browsers[1])
            .get(&url(&a, "/private"))
            .await
            .status,
        200,
        "the other sessions go on"
    );
}

#[tokio::test]
async fn replicas_share_sessions_through_sentinel_and_keep_them_through_a_failover() {
    let dir = tempfile::tempdir().unwrap();
    let (master, _replica) = start_master_and_replica(dir.path());
    let sentinels = start_sentinels(dir.path(), master.port);
    let (origin, idp) = (Origin::start().await, TestIdp::start().await);
    let nodes: Vec<String> = sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let redis = format!(
        "{{url: 'redis://127.0.0.1/', mode: sentinel, sentinel_master: primary, nodes: [{}]}}",
        nodes.join(", ")
    );
    let config = config(&idp, &origin, &redis);
    let (a, b) = (Gateway::start(&config).await, Gateway::start(&config).await);
    let signed_before = sign_in(&a).await;
    assert_eq!(
        browser_on(&b, &signed_before)
            .get(&url(&b, "/private"))
            .await
            .status,
        200
    );

    // The master dies; the sentinels promote the replica. Sign-ins work again through B, and
    // a replica started now (nothing held near) finds the session made before the failover.
    drop(master);
    let failed_over = Instant::now();
    let signed_after = loop {
        let mut b_browser = Browser::new("app.test", b.addr);
        let hops = b_browser.follow(&url(&b, "/private")).await;
        if hops.last().unwrap().status == 200 {
            break b_browser;
        }
        assert!(
            failed_over.elapsed() < Duration::from_secs(30),
            "no sign-in succeeded after the failover"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let c = Gateway::start(&config).await;
    for jar in [&signed_before, &signed_after] {
        assert_eq!(
            browser_on(&c, jar).get(&url(&c, "/private")).await.status,
            200
        );
    }
    // A holds the session near, freshly checked; a sign-out through C must still reach it
    // within a second: A's subscription follows the failover to the new master.
    assert_eq!(
        browser_on(&a, &signed_before)
            .get(&url(&a, "/private"))
            .await
            .status,
        200
    );
    signed_out_everywhere(&c, &a, &signed_before).await;
}
