//! The admin API's session endpoints: a user's sessions listed (handles, never ids or tokens),
//! one ended, all ended — in one gateway's memory, and across replicas sharing Redis.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::admin_api::{call, TOKEN};
use crate::browser::Browser;
use crate::common::{free_port, Gateway, Origin};
use crate::idp::TestIdp;

struct Setup {
    _origin: Origin,
    idp: TestIdp,
    _data: Vec<tempfile::TempDir>,
    gateways: Vec<Gateway>,
}

/// `count` gateways with the admin API on, sessions in memory or (with `redis_port`) shared.
async fn setup(count: usize, redis_port: Option<u16>) -> Setup {
    let origin = Origin::start().await;
    let idp = TestIdp::start().await;
    let store = match redis_port {
        Some(port) => format!("  store: redis\n  redis: {{url: 'redis://127.0.0.1:{port}/'}}\n"),
        None => String::new(),
    };
    let yaml = format!(
        "oidc_providers:\n{}sessions:\n  cookie_keys: ['a-cookie-key-shared-by-the-replicas-0123456789']\n{store}apps:\n  - {{id: app, host: app.test, origin: {{url: '{}'}}}}\n",
        idp.provider_yaml(""),
        origin.url()
    );
    let (mut data, mut gateways) = (Vec::new(), Vec::new());
    for _ in 0..count {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        gateways.push(
            Gateway::start_full(
                &format!("listen: [{{address: '127.0.0.1:{port}'}}]"),
                SocketAddr::from(([127, 0, 0, 1], port)),
                &format!(
                    ", api_token: '{TOKEN}', data_dir: '{}'",
                    dir.path().display()
                ),
                &yaml,
            )
            .await,
        );
        data.push(dir);
    }
    Setup {
        _origin: origin,
        idp,
        _data: data,
        gateways,
    }
}

fn base(gw: &Gateway) -> String {
    format!("http://app.test:{}", gw.addr.port())
}

async fn sign_in(s: &Setup, gw: &Gateway, sub: &str, sid: &str) -> Browser {
    s.idp.set(|k| {
        k.sub = Some(sub.into());
        k.sid = Some(sid.into());
    });
    let mut b = Browser::new("app.test", gw.addr);
    let hops = b.follow(&format!("{}/private", base(gw))).await;
    assert_eq!(hops.last().unwrap().status, 200);
    b
}

async fn me(gw: &Gateway, b: &Browser) -> u16 {
    let mut on = Browser::new("app.test", gw.addr);
    on.jar = b.jar.clone();
    on.get(&format!("{}/_auth/me", base(gw))).await.status
}

fn handles(list: &Value) -> Vec<String> {
    list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["handle"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_users_sessions_are_listed_and_ended_one_or_all() {
    let s = setup(1, None).await;
    let gw = &s.gateways[0];
    let first = sign_in(&s, gw, "user-1", "sid-1").await;
    let second = sign_in(&s, gw, "user-1", "sid-2").await;
    let other = sign_in(&s, gw, "user 2/ü", "sid-3").await;

    let (status, list) = call(gw, "GET", "/api/users/user-1/sessions", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{list}");
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{list}");
    let mut sids: Vec<&str> = sessions
        .iter()
        .map(|s| s["sid"].as_str().unwrap())
        .collect();
    sids.sort();
    assert_eq!(sids, ["sid-1", "sid-2"]);
    for session in sessions {
        assert_eq!(session["app"], "app");
        assert_eq!(session["provider"], "test-idp");
        assert_eq!(session["sub"], "user-1");
        assert!(session["expires_at"].as_u64().unwrap() > crate::tokens::now());
    }
    // Neither the session id (in any encoding) nor a token is shown.
    let text = list.to_string();
    for (_, cookie) in first.jar.iter().chain(second.jar.iter()) {
        assert!(!text.contains(cookie.as_str()), "{text}");
    }
    for secret in ["refresh", "id_token", "eyJ"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    // A `sub` is percent-encoded in the path, whatever it holds.
    let (status, list) = call(
        gw,
        "GET",
        "/api/users/user%202%2F%C3%BC/sessions",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((status, handles(&list).len()), (200, 1), "{list}");
    let (status, list) = call(
        gw,
        "GET",
        "/api/users/user-1/sessions?provider=another",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((status, handles(&list).len()), (200, 0), "{list}");

    // One session ends by its handle; the handle then names nothing.
    let (_, list) = call(gw, "GET", "/api/users/user-1/sessions", Some(TOKEN), None).await;
    let first_handle = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sid"] == "sid-1")
        .unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/sessions/{first_handle}");
    assert_eq!(call(gw, "DELETE", &path, Some(TOKEN), None).await.0, 200);
    assert_eq!(me(gw, &first).await, 401);
    assert_eq!(me(gw, &second).await, 200);
    assert_eq!(call(gw, "DELETE", &path, Some(TOKEN), None).await.0, 404);

    // All of a user's sessions end; another user's stay.
    let (status, ended) = call(
        gw,
        "DELETE",
        "/api/users/user-1/sessions",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((status, ended["ended"].as_u64()), (200, Some(1)), "{ended}");
    assert_eq!(me(gw, &second).await, 401);
    assert_eq!(me(gw, &other).await, 200);

    // Bad input: clear answers, nothing ended.
    for (method, path, expected) in [
        ("GET", "/api/users/user-1/sessions", 401),
        ("GET", "/api/users/%FF%FE/sessions", 400),
        ("GET", "/api/users//sessions", 400),
        ("POST", "/api/users/user-1/sessions", 405),
        ("GET", "/api/sessions/abc", 405),
        ("DELETE", "/api/sessions/not-a-handle", 404),
        (
            "DELETE",
            "/api/sessions/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            404,
        ),
    ] {
        let token = (expected != 401).then_some(TOKEN);
        let (status, body) = call(gw, method, path, token, None).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        assert!(body["error"].is_string(), "{method} {path}: {body}");
    }
    assert_eq!(me(gw, &other).await, 200);
}

#[tokio::test]
async fn ending_a_users_sessions_through_one_replica_ends_them_on_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let redis = crate::store_redis::start(dir.path(), &[]);
    let s = setup(2, Some(redis.port)).await;
    let (a, b) = (&s.gateways[0], &s.gateways[1]);
    let on_b = sign_in(&s, b, "user-1", "sid-1").await;
    let on_a = sign_in(&s, a, "user-1", "sid-2").await;
    assert_eq!(me(b, &on_a).await, 200, "A's session is warm on B too");

    // Listed by either replica.
    let (_, from_a) = call(a, "GET", "/api/users/user-1/sessions", Some(TOKEN), None).await;
    assert_eq!(handles(&from_a).len(), 2, "{from_a}");

    let ended_at = Instant::now();
    let (status, ended) = call(a, "DELETE", "/api/users/user-1/sessions", Some(TOKEN), None).await;
    assert_eq!((status, ended["ended"].as_u64()), (200, Some(2)), "{ended}");
    for (gw, browser) in [(b, &on_b), (b, &on_a), (a, &on_b)] {
        while me(gw, browser).await != 401 {
            assert!(
                ended_at.elapsed() < Duration::from_secs(1),
                "a session ended through A's admin API still serves a second later"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(redis);
}
