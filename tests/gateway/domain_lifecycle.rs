//! Custom domains belong to their app: a removed domain stops serving (and its certificate)
//! at once, an app's domains go with it, a pending domain reserves its name, and stored state
//! that no longer compiles is reported instead of keeping the gateway from starting.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{json, Value};

use crate::admin_api::{call, TOKEN};
use crate::common::{free_port, get, Gateway, Origin};
use crate::tls::{client, test_ca, write_cert};

/// An API app as `apps.json` stores it.
fn stored_app(id: &str, host: &str, origin: &Origin) -> Value {
    json!({"id": id, "host": host, "default_action": "public", "origin": {"url": origin.url()}})
}

/// A domain-book entry as `domains.json` stores it.
fn stored_domain(app: &str, domain: &str, status: &str) -> Value {
    json!({"app": app, "domain": domain, "status": status, "error_message": null,
           "dns_records": [], "issued_at": 1_700_000_000u64})
}

fn seed(data: &Path, apps: &[Value], domains: &[Value]) {
    std::fs::write(
        data.join("apps.json"),
        Value::from(apps.to_vec()).to_string(),
    )
    .unwrap();
    std::fs::write(
        data.join("domains.json"),
        Value::from(domains.to_vec()).to_string(),
    )
    .unwrap();
}

struct Running {
    gw: Gateway,
    tls: SocketAddr,
}

/// A gateway with a plain and a TLS listener, the admin API on `data`, certificates in
/// `certs`, and `file_apps` in its config file.
async fn start(data: &Path, certs: &Path, file_apps: &str) -> Running {
    let (plain, tls) = (free_port(), free_port());
    let listen = format!(
        "listen:\n  - {{address: '127.0.0.1:{plain}'}}\n  - {{address: '127.0.0.1:{tls}', tls: true}}"
    );
    let gw = Gateway::start_full(
        &listen,
        SocketAddr::from(([127, 0, 0, 1], plain)),
        &format!(", api_token: '{TOKEN}', data_dir: '{}'", data.display()),
        &format!(
            "tls: {{certs_dir: '{}'}}\ndomains: {{public_name: gw.example.net, check_interval: 1h}}\napps: {file_apps}\n",
            certs.display()
        ),
    )
    .await;
    Running {
        gw,
        tls: SocketAddr::from(([127, 0, 0, 1], tls)),
    }
}

#[tokio::test]
async fn a_removed_domain_stops_serving_at_once_and_can_be_added_again() {
    let origin = Origin::start().await;
    let (data, certs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = test_ca();
    write_cert(
        certs.path(),
        "shop.customer.test",
        &["shop.customer.test"],
        &ca,
    );
    seed(
        data.path(),
        &[stored_app("shop", "shop.test", &origin)],
        &[stored_domain("shop", "shop.customer.test", "Active")],
    );
    let r = start(data.path(), certs.path(), "[]").await;
    let https = client(&ca, &["shop.customer.test"], r.tls);
    let url = format!("https://shop.customer.test:{}/x", r.tls.port());
    assert_eq!(https.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(
        get(r.gw.addr, "/x", "shop.customer.test")
            .await
            .unwrap()
            .status,
        200
    );

    let (status, _) = call(
        &r.gw,
        "DELETE",
        "/api/apps/shop/custom-domains/shop.customer.test",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 204);
    // At once: no app on that name, and no certificate either.
    assert_eq!(
        get(r.gw.addr, "/x", "shop.customer.test")
            .await
            .unwrap()
            .status,
        404
    );
    let fresh = client(&ca, &["shop.customer.test"], r.tls);
    assert!(
        fresh.get(&url).send().await.is_err(),
        "no certificate is served"
    );
    assert!(!certs.path().join("shop.customer.test.crt").exists());
    assert!(!certs.path().join("shop.customer.test.key").exists());
    let (status, entry) = call(
        &r.gw,
        "POST",
        "/api/apps/shop/custom-domains",
        Some(TOKEN),
        Some(&json!({"domain": "shop.customer.test"}).to_string()),
    )
    .await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["status"], "PendingVerification");
}

#[tokio::test]
async fn an_apps_domains_go_with_it() {
    let origin = Origin::start().await;
    let (data, certs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = test_ca();
    write_cert(
        certs.path(),
        "shop.customer.test",
        &["shop.customer.test"],
        &ca,
    );
    // The operator's own certificate, which stays.
    write_cert(certs.path(), "shop.test", &["shop.test"], &ca);
    seed(
        data.path(),
        &[stored_app("shop", "shop.test", &origin)],
        &[
            stored_domain("shop", "shop.customer.test", "Active"),
            stored_domain("shop", "pending.customer.test", "PendingVerification"),
        ],
    );
    let r = start(data.path(), certs.path(), "[]").await;
    assert_eq!(
        get(r.gw.addr, "/", "shop.customer.test")
            .await
            .unwrap()
            .status,
        200
    );
    let (status, _) = call(&r.gw, "DELETE", "/api/apps/shop", Some(TOKEN), None).await;
    assert_eq!(status, 204);
    assert_eq!(
        get(r.gw.addr, "/", "shop.customer.test")
            .await
            .unwrap()
            .status,
        404
    );
    assert!(!certs.path().join("shop.customer.test.crt").exists());
    assert!(certs.path().join("shop.test.crt").exists());

    // A new app under the same id starts without them.
    let app = stored_app("shop", "new-shop.test", &origin).to_string();
    let (status, body) = call(&r.gw, "POST", "/api/apps", Some(TOKEN), Some(&app)).await;
    assert_eq!(status, 201, "{body}");
    let (status, list) = call(
        &r.gw,
        "GET",
        "/api/apps/shop/custom-domains",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]));
    assert_eq!(
        get(r.gw.addr, "/", "shop.customer.test")
            .await
            .unwrap()
            .status,
        404
    );
    // And the names are free for any app.
    let other = stored_app("other", "other.test", &origin).to_string();
    assert_eq!(
        call(&r.gw, "POST", "/api/apps", Some(TOKEN), Some(&other))
            .await
            .0,
        201
    );
    for domain in ["shop.customer.test", "pending.customer.test"] {
        let (status, entry) = call(
            &r.gw,
            "POST",
            "/api/apps/other/custom-domains",
            Some(TOKEN),
            Some(&json!({"domain": domain}).to_string()),
        )
        .await;
        assert_eq!(status, 201, "{domain}: {entry}");
    }
    let book: Value =
        serde_json::from_slice(&std::fs::read(data.path().join("domains.json")).unwrap()).unwrap();
    assert!(
        book.as_array().unwrap().iter().all(|d| d["app"] == "other"),
        "{book}"
    );
}

#[tokio::test]
async fn a_pending_domain_reserves_its_name() {
    let origin = Origin::start().await;
    let (data, certs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_cert(certs.path(), "shop.test", &["shop.test"], &test_ca());
    seed(
        data.path(),
        &[stored_app("shop", "shop.test", &origin)],
        &[],
    );
    let r = start(data.path(), certs.path(), "[]").await;
    let (status, _) = call(
        &r.gw,
        "POST",
        "/api/apps/shop/custom-domains",
        Some(TOKEN),
        Some(&json!({"domain": "pending.customer.test"}).to_string()),
    )
    .await;
    assert_eq!(status, 201);
    let taker = stored_app("taker", "Pending.Customer.test.", &origin).to_string();
    let (status, body) = call(&r.gw, "POST", "/api/apps", Some(TOKEN), Some(&taker)).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("custom domain of app `shop`"),
        "{body}"
    );
    let other = stored_app("other", "other.test", &origin).to_string();
    assert_eq!(
        call(&r.gw, "POST", "/api/apps", Some(TOKEN), Some(&other))
            .await
            .0,
        201
    );
    let patch = json!({"custom_domains": ["pending.customer.test"]}).to_string();
    let (status, _) = call(&r.gw, "PATCH", "/api/apps/other", Some(TOKEN), Some(&patch)).await;
    assert_eq!(status, 409);
    // The owner itself cannot take it as a host name either while it is pending.
    let patch = json!({"host": "pending.customer.test"}).to_string();
    let (status, _) = call(&r.gw, "PATCH", "/api/apps/shop", Some(TOKEN), Some(&patch)).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn stored_state_that_does_not_compile_is_reported_not_fatal() {
    let origin = Origin::start().await;
    let (data, certs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_cert(certs.path(), "same.test", &["same.test"], &test_ca());
    // As an older version could leave it: two stored apps on one host, and an active domain
    // that the config file now serves for another app.
    seed(
        data.path(),
        &[
            stored_app("first", "same.test", &origin),
            stored_app("second", "same.test", &origin),
        ],
        &[stored_domain("first", "taken.test", "Active")],
    );
    let file_app = format!(
        "[{{id: owner, host: taken.test, default_action: public, origin: {{url: '{}'}}}}]",
        origin.url()
    );
    let r = start(data.path(), certs.path(), &file_app).await;
    assert_eq!(get(r.gw.addr, "/", "same.test").await.unwrap().status, 200);
    assert_eq!(get(r.gw.addr, "/", "taken.test").await.unwrap().status, 200);
    let ready = get(r.gw.admin, "/readyz", "admin").await.unwrap();
    assert_eq!(ready.status, 200);
    assert!(
        ready.body.contains("stored app `second` is not served"),
        "{}",
        ready.body
    );
    assert!(
        ready
            .body
            .contains("custom domain `taken.test` of app `first` is not served"),
        "{}",
        ready.body
    );
    let (status, unserved) = call(&r.gw, "GET", "/api/unserved", Some(TOKEN), None).await;
    assert_eq!(status, 200);
    let listed: Vec<(String, Option<String>)> = unserved
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["app"].as_str().unwrap().to_string(),
                u["domain"].as_str().map(String::from),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("second".to_string(), None),
            ("first".to_string(), Some("taken.test".to_string()))
        ]
    );
    // Admin changes keep working.
    let third = stored_app("third", "third.test", &origin).to_string();
    assert_eq!(
        call(&r.gw, "POST", "/api/apps", Some(TOKEN), Some(&third))
            .await
            .0,
        201
    );
    assert_eq!(get(r.gw.addr, "/", "third.test").await.unwrap().status, 200);
    // A new app that does not compile is still refused with its problems.
    let clash =
        json!({"id": "clash", "host": "c.test", "origin": {"url": "gopher://x"}}).to_string();
    assert_eq!(
        call(&r.gw, "POST", "/api/apps", Some(TOKEN), Some(&clash))
            .await
            .0,
        422
    );
}
