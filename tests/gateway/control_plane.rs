//! The control plane shared by replicas (`control.store: redis`): an app created, changed or
//! deleted through any replica's admin API is applied by every replica within a second, a
//! restart of every replica keeps it, and two replicas changing apps at the same moment lose
//! neither change.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::admin_api::{call, TOKEN};
use crate::common::{free_port, get, Gateway, Origin};

async fn replica(origin: &Origin, redis_port: u16) -> Gateway {
    let port = free_port();
    Gateway::start_full(
        &format!("listen: [{{address: '127.0.0.1:{port}'}}]"),
        SocketAddr::from(([127, 0, 0, 1], port)),
        &format!(", api_token: '{TOKEN}'"),
        &format!(
            "sessions: {{cookie_keys: ['a-cookie-key-shared-by-the-replicas-0123456789']}}\n\
             control: {{store: redis, redis: {{url: 'redis://127.0.0.1:{redis_port}/', key_prefix: 'control-test:'}}}}\n\
             apps: [{{id: static, host: static.test, default_action: public, origin: {{url: '{}'}}}}]\n",
            origin.url()
        ),
    )
    .await
}

fn app(id: &str, origin: &Origin, action: &str) -> String {
    json!({
        "id": id, "host": format!("{id}.test"), "origin": {"url": origin.url()},
        "default_action": action
    })
    .to_string()
}

/// Waits until `host` answers `/` with `status` on every one of `replicas`; how long it took.
async fn everywhere(replicas: &[&Gateway], host: &str, status: u16) -> Duration {
    let started = Instant::now();
    for gw in replicas {
        loop {
            let got = get(gw.addr, "/", host).await.unwrap().status;
            if got == status {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{host} still answers {got} on {} (waiting for {status})",
                gw.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    started.elapsed()
}

/// Creates app `id` through `gw`, trying again when another replica's change came first.
async fn create(gw: &Gateway, id: &str, origin: &Origin) {
    let body = app(id, origin, "public");
    for _ in 0..5 {
        let (status, answer) = call(gw, "POST", "/api/apps", Some(TOKEN), Some(&body)).await;
        match status {
            201 => return,
            409 if answer.to_string().contains("another replica") => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            _ => panic!("{status} {answer}"),
        }
    }
    panic!("{id} never created");
}

#[tokio::test]
async fn an_app_changed_on_any_replica_is_served_by_every_replica_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let redis = crate::store_redis::start(dir.path(), &[]);
    let origin = Origin::start().await;
    let (a, b, c) = tokio::join!(
        replica(&origin, redis.port),
        replica(&origin, redis.port),
        replica(&origin, redis.port)
    );

    // Created on A: served by B and C.
    let (status, body) = call(
        &a,
        "POST",
        "/api/apps",
        Some(TOKEN),
        Some(&app("shop", &origin, "public")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    everywhere(&[&a, &b, &c], "shop.test", 200).await;
    // Changed on B: every replica denies.
    let (status, body) = call(
        &b,
        "PATCH",
        "/api/apps/shop",
        Some(TOKEN),
        Some(r#"{"default_action": "deny"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    everywhere(&[&a, &b, &c], "shop.test", 403).await;
    // Listed the same way everywhere.
    let (_, listed) = call(&c, "GET", "/api/apps/shop", Some(TOKEN), None).await;
    assert_eq!(listed["default_action"], "deny", "{listed}");
    // Deleted on C: withdrawn everywhere.
    let (status, _) = call(&c, "DELETE", "/api/apps/shop", Some(TOKEN), None).await;
    assert_eq!(status, 204);
    everywhere(&[&a, &b, &c], "shop.test", 404).await;

    // Two replicas changing apps at the same moment: neither change is lost (one may be asked
    // to try again).
    tokio::join!(create(&a, "left", &origin), create(&b, "right", &origin));
    everywhere(&[&a, &b, &c], "left.test", 200).await;
    everywhere(&[&a, &b, &c], "right.test", 200).await;

    // Every replica restarted: the apps are still served.
    drop((a, b, c));
    let (a, b) = tokio::join!(replica(&origin, redis.port), replica(&origin, redis.port));
    everywhere(&[&a, &b], "left.test", 200).await;
    everywhere(&[&a, &b], "right.test", 200).await;
}

#[tokio::test]
async fn a_single_node_whose_apps_file_was_edited_takes_the_edit_and_the_next_change() {
    let origin = Origin::start().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let gw = Gateway::start_full(
        &format!("listen: [{{address: '127.0.0.1:{port}'}}]"),
        SocketAddr::from(([127, 0, 0, 1], port)),
        &format!(", api_token: '{TOKEN}', data_dir: '{}'", data.path().display()),
        &format!(
            "apps: [{{id: static, host: static.test, default_action: public, origin: {{url: '{}'}}}}]\n",
            origin.url()
        ),
    )
    .await;
    let (status, _) = call(
        &gw,
        "POST",
        "/api/apps",
        Some(TOKEN),
        Some(&app("one", &origin, "public")),
    )
    .await;
    assert_eq!(status, 201);
    // Edited by hand behind the gateway's back: the change that meets it is refused once,
    // the edit is applied, and the next try lands on top of it.
    std::fs::write(data.path().join("apps.json"), "[]").unwrap();
    let (status, body) = call(
        &gw,
        "POST",
        "/api/apps",
        Some(TOKEN),
        Some(&app("two", &origin, "public")),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        get(gw.addr, "/", "one.test").await.unwrap().status,
        404,
        "the edit applied"
    );
    let (status, body) = call(
        &gw,
        "POST",
        "/api/apps",
        Some(TOKEN),
        Some(&app("two", &origin, "public")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(get(gw.addr, "/", "two.test").await.unwrap().status, 200);
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("apps.json")).unwrap()).unwrap();
    assert_eq!(stored.as_array().unwrap().len(), 1, "{stored}");
}
